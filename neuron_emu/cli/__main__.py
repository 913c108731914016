import sys

from neuron_emu.cli.main import main

sys.exit(main())
