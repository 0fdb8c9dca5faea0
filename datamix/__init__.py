"""datamix: curate training data with data scaling laws."""

__version__ = "0.1.0"
