"""The test suite, a package: modules import their shared helpers as ``tests.helpers``, ``tests.tiny``,
``tests.corpus`` and ``tests.s3server`` (pytest puts the repository root on ``sys.path``)."""
