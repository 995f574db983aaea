"""Understanding sales-chat text: pure functions over text and a reference time.

Entry point: ``nlp.extract.extract(text, now)`` returns the eleven fields of the
extraction spec. Submodules are imported on demand so that light users (the holiday
calendar) do not pay for the extractors.
"""
