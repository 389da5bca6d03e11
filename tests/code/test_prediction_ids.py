"""Signed prediction ids: issued ids verify, anything else does not, and the key rotates in two steps."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from serving.prediction_ids import ID_LENGTH, PredictionIds

OLD, CURRENT, NEXT = (f"{name} key of at least sixteen chars" for name in ("old", "current", "next"))


def test_issued_ids_verify_and_have_the_documented_shape():
    ids = PredictionIds.from_settings({"PREDICTION_ID_KEY": CURRENT})
    issued = {ids.issue() for _ in range(1000)}
    assert len(issued) == 1000
    for prediction_id in issued:
        assert len(prediction_id) == ID_LENGTH and int(prediction_id, 16) >= 0
        assert ids.issued(prediction_id)


@given(st.text(max_size=80))
def test_arbitrary_strings_never_verify(text):
    assert not PredictionIds(CURRENT.encode()).issued(text)


def test_rotation_accepts_the_previous_key_until_it_is_dropped():
    before = PredictionIds.from_settings({"PREDICTION_ID_KEY": CURRENT})
    signed_before = before.issue()
    during = PredictionIds.from_settings({"PREDICTION_ID_KEY": NEXT, "PREDICTION_ID_KEY_PREVIOUS": CURRENT})
    assert during.issued(signed_before) and during.issued(during.issue())
    assert not before.issued(during.issue())  # new ids are signed with the new key
    after = PredictionIds.from_settings({"PREDICTION_ID_KEY": NEXT})
    assert not after.issued(signed_before)
    assert not PredictionIds.from_settings(
        {"PREDICTION_ID_KEY": NEXT, "PREDICTION_ID_KEY_PREVIOUS": OLD}
    ).issued(signed_before)


def test_without_a_key_ids_verify_in_this_process_only_and_a_warning_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="serving.prediction_ids"):
        first = PredictionIds.from_settings({})
        short = PredictionIds.from_settings({"PREDICTION_ID_KEY": "short"})
    assert "PREDICTION_ID_KEY is unset" in caplog.text and "shorter than 16" in caplog.text
    assert first.issued(first.issue())
    assert not short.issued(first.issue())  # another process (another random key)


def test_an_unresolved_key_vault_reference_is_never_used_as_a_key(caplog):
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/prediction-id-key/)"
    with caplog.at_level(logging.WARNING, logger="serving.prediction_ids"):
        ids = PredictionIds.from_settings(
            {"PREDICTION_ID_KEY": reference, "PREDICTION_ID_KEY_PREVIOUS": reference}
        )
    assert "unresolved Key Vault reference" in caplog.text
    literal = PredictionIds(reference.encode())
    assert not ids.issued(literal.issue())  # an attacker who read the reference cannot sign ids
