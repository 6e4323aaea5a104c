"""Time series: readers, protocol splits, calendar features, windows, the pretraining corpus, shipped datasets."""
