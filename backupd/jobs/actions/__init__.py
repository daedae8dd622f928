"""What a run does, one module per action, each taking only what it needs (never the whole Run):
archive.py (sources -> an archive in the spool), store.py (an archive -> the job's destinations),
pending.py (uploads an earlier run left in the spool). runner.ACTIONS lists each action's steps."""
