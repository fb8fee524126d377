"""The contract between the regression runner (:mod:`bs4nn.sim.regress`) and its cocotb testbench
(:mod:`bs4nn.sim.cocotb_tb.tb_core`): environment variables naming the job and result files, the
clock, and the "no reset" marker.  Both import it; the testbench never imports the runner."""

CLOCK_PERIOD_NS = 10
JOB_ENV = "BS4NN_TB_JOB"
"""Names the ``job.npz`` the runner writes: every image's address events and the stream options."""
RESULT_ENV = "BS4NN_TB_RESULT"
"""Names the ``observed.npz`` the testbench writes: what the core reported."""
PROGRESS_ENV = "BS4NN_TB_PROGRESS"
"""Names the file where the testbench keeps the count of finished images (the runner's progress bar reads it)."""
PROGRESS_INTERVAL_S = 0.25
"""How often the testbench rewrites that count, and the runner reads it."""
NO_RESET = -1
"""``reset_after_events`` entry of an image streamed without a reset."""
