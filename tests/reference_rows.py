"""Former home of the row-family reference, now in cnorm.reference; the same
names as ``reference`` (this module stays for tests that still import it)."""
from reference import *  # noqa: F403
