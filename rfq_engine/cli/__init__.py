"""The ``rfq`` command line. Heavy modules are imported inside each command."""
