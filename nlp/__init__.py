"""Understanding sales-chat text: pure functions over text and a reference time.

Entry points (submodules are imported on demand, so light users such as the holiday
calendar do not pay for the extractors):

- ``nlp.extract.extract(text, now) -> dict``: the eleven fields of the extraction spec;
  never raises. ``nlp.extract.run_jsonl(lines, out, default_now)`` is the batch form
  behind ``leadbot extract`` (and ``python3 -m nlp.extract``).
- ``nlp.normalize.normalize(text)`` / ``fold(text)``: length-preserving full-width to ASCII
  (and, for ``fold``, traditional to simplified on number/date words).
- ``nlp.chat.split_record(text, now) -> list[Segment]``: forwarded records into speaker
  segments with per-line reference times; ``stamp_spans`` gives the header stamps.
- ``nlp.dates.extract_dates(segments, original)``, ``nlp.amounts.extract_amounts(text)``,
  ``nlp.phones.extract_phones(text)``: the rule-based field extractors.
"""
