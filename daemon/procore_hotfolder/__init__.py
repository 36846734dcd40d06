"""procore-hotfolder: watch drop folders and upload settled files to Procore."""

__version__ = "0.1.0"
