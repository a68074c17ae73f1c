from circuitwatch.cli import main

main()
