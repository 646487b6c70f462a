-- Trace links survive restarts: the run's trace and root span, and each attempt's span.
ALTER TABLE runs ADD COLUMN trace_id TEXT;
ALTER TABLE runs ADD COLUMN span_id TEXT;
ALTER TABLE step_attempts ADD COLUMN span_id TEXT;
-- The attempt's agent kind, so charts group attempts by agent without reading definitions.
ALTER TABLE step_attempts ADD COLUMN agent TEXT;
