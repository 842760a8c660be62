"""Start order of services: dependency cycles and waves. Pure functions over {name: deps}.

`deps[a]` is the set of names a must start after (its `after` and `requires` that are present).
A wave is a set of services whose dependencies are all in earlier waves: a wave starts in parallel,
and shutdown runs the waves in reverse.
"""


def strongly_connected(deps):
    """Strongly connected components (Tarjan's algorithm, iterative), each a sorted list."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(deps):
        if root in index:
            continue
        work = [(root, iter(sorted(deps.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in deps:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(deps.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                out.append(sorted(comp))
    return out


def cycle_path(component, deps):
    """One concrete cycle through a strongly connected component: [a, b, ..., a] (shortest from min)."""
    start = min(component)
    members = set(component)
    if start in deps.get(start, ()):
        return [start, start]
    prev, frontier, seen = {}, [start], {start}
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(deps.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if child in members and child not in seen:
                    seen.add(child)
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]  # not reached for a real component


def cycles(deps):
    """[(members, path)] for every dependency cycle (components of 2+ nodes, or a self-dependency)."""
    out = []
    for comp in strongly_connected(deps):
        if len(comp) > 1 or comp[0] in deps.get(comp[0], ()):
            out.append((comp, cycle_path(comp, deps)))
    return out


def waves(deps):
    """Start waves of an acyclic graph: [[names with no deps], [names after those], ...], each sorted.

    Dependencies on names not in `deps` are ignored. ValueError on a cycle.
    """
    level = {}
    for root in sorted(deps):
        if root in level:
            continue
        # Iterative depth-first evaluation of level(n) = 1 + max(level(dep)).
        stack, active = [root], {root}
        while stack:
            node = stack[-1]
            pending = [d for d in deps[node] if d in deps and d not in level]
            if pending:
                for d in pending:
                    if d in active:
                        raise ValueError("dependency cycle through %s" % d)
                d = min(pending)
                stack.append(d)
                active.add(d)
                continue
            level[node] = 1 + max((level[d] for d in deps[node] if d in deps), default=-1)
            stack.pop()
            active.discard(node)
    out = [[] for _ in range(1 + max(level.values(), default=-1))]
    for name in sorted(level):
        out[level[name]].append(name)
    return out


def shutdown_waves(start_waves):
    """Stop order: the start waves reversed (dependents stop before what they depend on)."""
    return [list(w) for w in reversed(start_waves)]
