//! The experiment folder on disk: reads every `.yaml`/`.yml` file and hands the texts to `spec`.
