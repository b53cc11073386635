"""One run lifecycle (运行生命周期) shared by every way a version is made: a table read (pipeline.extract),
change capture (pipeline.cdc) and a replay of corrected rows (pipeline.replay). See pipeline.run.lifecycle."""

from pipeline.run.lifecycle import begin, discard, follow_up, lease, publish, staging

__all__ = ["begin", "discard", "follow_up", "lease", "publish", "staging"]
