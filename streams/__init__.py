"""Stream processing: the per-event pipeline shared by the live faust app and replay.

- :mod:`streams.pipeline` — :class:`~streams.pipeline.Pipeline`, the deterministic
  per-event engine (decode, dedup, enrich, aggregate, close buckets, detect, alert).
- :mod:`streams.detection`, :mod:`streams.exposure` — bucket close: order exposure of
  every slice (numpy) and the per-slice detectors; :mod:`streams.alerting` and
  :mod:`streams.scope` — alert lifecycle and "one incident, one page"; :mod:`streams.mix`
  — intent-mix shifts of every slice (metric ``intent_mix``), alerted by
  :mod:`streams.signals` with the order-surge and overdue signals.
- :mod:`streams.complaints` — masking, intent, auto-resolution of complaints.
- :mod:`streams.replay` — runs a pipeline over a JSONL file in event time.
- :mod:`streams.app` / :mod:`streams.agents` — the faust-streaming app that feeds the
  same pipeline from Kafka topics.
- :mod:`streams.text` — PII masking, intent classification, sentiment of complaint texts.
"""
