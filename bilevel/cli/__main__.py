"""python -m bilevel.cli"""

from bilevel.cli import main

main()
