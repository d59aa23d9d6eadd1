import sys

from clipsep_rt.cli.main import main

sys.exit(main())
