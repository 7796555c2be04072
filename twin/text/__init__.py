"""How chat messages become clean text: sessions and turns (``sessions.py``) and the PII scrubber
(``scrub.py``). Shared by ``twin prepare`` (training data) and ``twin drafts`` (a live chat), so the
twin sees a conversation cut and scrubbed the same way in both."""
