# boot.py: the first file the board runs. It deliberately does nothing: no network and nothing
# that can fail, so no update or config can ever keep the REPL from coming up.
