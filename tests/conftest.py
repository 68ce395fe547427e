import os
import sys

# Tests import helpers from tests/_util.py; the package itself must come from the install.
sys.path.insert(0, os.path.dirname(__file__))
