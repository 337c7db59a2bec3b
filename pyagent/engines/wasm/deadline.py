"""A bound on a wasm module's own code while it loads: its start function and the exports the runtime
calls to learn its built-ins and entrypoints run in the loading thread, so a module that loops there
(one no key vouches for yet: a bundle being published) would hold that thread for ever. wasmtime's
epoch interruption traps the code once a timer has moved the engine's epoch on."""

from __future__ import annotations

import threading

import wasmtime

__all__ = ["deadline_timer", "engine_for"]


def engine_for(load_seconds: float | None) -> wasmtime.Engine:
    """An engine whose code can be interrupted (epochs) when a load is bounded, else the plain one."""
    if load_seconds is None:
        return wasmtime.Engine()
    config = wasmtime.Config()
    config.epoch_interruption = True  # the module's code traps ("interrupt") once the epoch moves on
    return wasmtime.Engine(config)


def deadline_timer(
    engine: wasmtime.Engine, store: wasmtime.Store, seconds: float | None
) -> threading.Timer | None:
    """With ``seconds``, a timer that interrupts the store's wasm code when they have passed."""
    if seconds is None:
        return None
    store.set_epoch_deadline(1)
    timer = threading.Timer(seconds, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    return timer
