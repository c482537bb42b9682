import sys

from dingpush.cli import main

sys.exit(main())
