from apertur.cli import main

main()
