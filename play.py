"""Play a worldsim world live: `python play.py --help`."""
from worldsim.play import main

if __name__ == "__main__":
    main()
