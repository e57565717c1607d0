"""``python -m octopus.agent``: the slim agent process (see ``octopus.agent.slim``)."""

import sys

from octopus.agent.slim import main

sys.exit(main())
