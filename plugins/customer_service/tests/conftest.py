from __future__ import annotations

import pytest

from domainfm.testing import HashingEncoder


@pytest.fixture
def hashing_encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture(scope="session")
def regex_masker():
    from domainfm.privacy.masker import Masker

    return Masker(use_ner=False)
