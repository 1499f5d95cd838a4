"""Pairing upsample sites with the pools they invert (DESIGN.md §3), from the example forward's call order.

For each upsample call, the unpaired pool calls made before it are searched most recent first for one whose
shapes it inverts — pool input (N, C, *S) and output (N, C, *O), upsample input (N, C, *O) and output
(N, C, *S) — so the nesting of an encoder–decoder (down1, down2, …, up2, up1) pairs up2 with down2. A site
is paired when every one of its calls pairs with a call of one pool site, and that pool's calls are all
paired (the LIFO contract of the drop-in path: each pool call is matched by one upsample call). Otherwise
the upsample is skipped with the reason (e.g. FPN's top-down path upsamples features no pool produced).
"""

from __future__ import annotations

from .plan import Site

__all__ = ["pair_sites"]


def _inverts(pool_call: dict, up_call: dict) -> bool:
    return (
        pool_call["input"][2:] == up_call["output"][2:]
        and pool_call["output"][2:] == up_call["input"][2:]
        and pool_call["output"][:2] == up_call["input"][:2]
    )


def pair_sites(sites: dict[str, Site], events: list[tuple[str, int]], upsample_names: list[str],
               pool_ok: dict[str, str | None]) -> dict[str, tuple[str | None, str]]:
    """Returns {upsample site: (pool site or None, reason)}. ``pool_ok[name]`` is None for a pool that may be
    paired, else why not (it is skipped, or its padding is dynamic)."""
    stack: list[tuple[str, int]] = []
    pairs: dict[str, list[tuple[str, int] | None]] = {name: [] for name in upsample_names}
    for name, call in events:
        site = sites.get(name)
        if site is None:
            continue
        if site.target in ("max", "avg"):
            stack.append((name, call))
        elif name in pairs:
            up_call = site.calls[call]
            found = None
            for i in range(len(stack) - 1, -1, -1):
                pool_name, pool_call = stack[i]
                if _inverts(sites[pool_name].calls[pool_call], up_call):
                    found = stack.pop(i)
                    break
            pairs[name].append(found)
    result: dict[str, tuple[str | None, str]] = {}
    used: dict[str, int] = {}
    for name, found in pairs.items():
        site = sites[name]
        if not site.calls:
            result[name] = (None, "not called by the example forward")
            continue
        pools = {f[0] for f in found if f is not None}
        if any(f is None for f in found) or not pools:
            up = site.calls[0]
            result[name] = (None, f"unpaired: no earlier pool maps {up['output'][2:]} to {up['input'][2:]} "
                                  f"with {up['input'][1]} channels")  # fmt: skip
            continue
        if len(pools) > 1:
            result[name] = (None, f"ambiguous: its calls pair with several pools ({', '.join(sorted(pools))})")
            continue
        pool = pools.pop()
        if pool_ok.get(pool) is not None:
            result[name] = (None, f"paired pool {pool} cannot be used: {pool_ok[pool]}")
            continue
        used[pool] = used.get(pool, 0) + len(found)
        result[name] = (pool, "")
    for name, (pool, _) in list(result.items()):
        if pool is not None and used[pool] != len(sites[pool].calls):
            result[name] = (None, f"pool {pool} has calls without a matching upsample (the LIFO contract needs one per call)")
    return result
