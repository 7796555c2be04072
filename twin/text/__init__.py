"""How chat messages become clean text: line breaks and control characters (``normalize.py``, also
for every text the server receives), sessions and turns (``sessions.py``) and the PII scrubber
(``scrub.py``, with its detectors by family in ``pii_links.py``, ``pii_phones.py``, ``pii_numbers.py``,
``pii_places.py`` and ``pii_secrets.py``), and word tokens in any script (``words.py``, for eval and
memory). Shared by ``twin prepare`` (training data) and ``twin drafts`` (a live chat), so the twin
sees a conversation cut and scrubbed the same way in both."""
