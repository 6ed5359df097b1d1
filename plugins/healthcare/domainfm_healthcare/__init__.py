"""domainfm healthcare plugin: symptom triage and medical text classification that knows when not to answer."""

NOTICE = (
    "Not a diagnosis: these are suggestions from a statistical model to help route the case. "
    "A qualified clinician must assess the patient. In an emergency call your local emergency number."
)

__all__ = ["NOTICE"]
