"""Data room: readers, splits, scalers, calendar features, windowing, datasets and the model bundle.

Everything here is shared by training and serving, so the service applies exactly the transforms
that training fitted (the transform state travels inside the model bundle, see `data.artifact`).
"""
