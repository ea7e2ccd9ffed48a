from mlpower.cli import main

main()
