from batchkit.cli.main import main

main()
