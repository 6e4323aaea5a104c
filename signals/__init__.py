"""Signal models (EEG artifact removal, network intrusion detection); registry filled as models land."""

REGISTRY: dict = {}
