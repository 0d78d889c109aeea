"""Where the tests' files are, whatever folder a test module sits in."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
DEMO_DATA = ROOT / "ragsafe" / "corpora" / "data"
