"""The ``assay`` command line: parse, call the service layer, render."""
