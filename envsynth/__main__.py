from envsynth.cli import main

main()
