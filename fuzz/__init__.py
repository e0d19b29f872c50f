"""The fuzz and fault suite (issue 15): seeded, bounded campaigns of hostile inputs against the data files and
the gRPC services, run as an outsider would (real servers on 127.0.0.1). ``python -m fuzz`` (``make fuzz``)
runs the long form; tests/fuzz runs the short form in ``make test``. Each campaign reports the inputs tried,
crashes (an exception that is not a domain error), INTERNAL-class answers and absurd results or writes.
"""
