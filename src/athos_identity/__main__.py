from athos_identity.cli import main

main()
