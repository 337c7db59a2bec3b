"""The parts of the end-to-end loop test (``tests/e2e/test_loop.py``), one module each."""
