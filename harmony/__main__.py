from harmony.cli.main import main

main()
