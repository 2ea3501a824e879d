from demandcast.cli import main

main()
