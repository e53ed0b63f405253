from hmacguard.cli import main

main()
