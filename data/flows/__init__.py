"""Network flow records for the classify task: formats (NetFlow v2, NSL-KDD), polars readers, the
train-fitted transform (log-scaled numbers, top-k categorical codes), windows of consecutive flows that
never cross a split, and the DataModule (`windows.ClassifyDataConfig`). Shipped datasets are in
`datasets/` (SOURCE.md)."""
