import sys

from fraud_model.ray_env import use_this_venv_for_ray_workers

use_this_venv_for_ray_workers()  # before anything imports Ray

from training.cli import main  # noqa: E402

sys.exit(main())
