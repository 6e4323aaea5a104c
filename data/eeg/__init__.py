"""EEG: MNE-based readers (EDF/EDF+/BDF/FIF/EEGLAB), channel names and template mapping, preprocessing,
ICA and semi-synthetic noisy/clean pairs, time-split windows and the denoise DataModule, shipped recordings."""
