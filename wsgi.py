"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`, `flask --app wsgi ...`.

Building the app imports Flask, SQLAlchemy, pydantic, numpy and every feature: about a million
objects that live as long as the process. The cyclic collector would scan them again and again
while they are made and find nothing (a third of the start-up time of `flask backtest`), so it
is paused meanwhile, and what start-up built is then frozen out of every later collection
(`gc.freeze`, as the gc docs advise for long-lived start-up state; workers fork before this).
"""

import gc

_collecting = gc.isenabled()
gc.disable()
try:
    from app.factory import create_app

    app = create_app()
    gc.freeze()
finally:
    if _collecting:
        gc.enable()
