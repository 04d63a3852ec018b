"""The names of the dataset layouts, importable without the loaders (the command line's choices
are built from these without importing torch, OpenCV or SciPy; tests check they equal the
registries of :mod:`vidreid.data.datasets` and :mod:`vidreid.synth`)."""

DATASET_NAMES = ("cuhk01", "cuhk03_detected", "cuhk03_labeled", "dukemtmcreid", "dukev", "folder", "ilidsvid",
                 "market1501", "mars", "msmt17", "prid2011", "tracklets", "viper")
SYNTH_LAYOUTS = ("prid2011", "ilidsvid", "mars", "dukev", "folder", "market1501", "dukemtmcreid", "msmt17", "cuhk03",
                 "viper", "cuhk01")
