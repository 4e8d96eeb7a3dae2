"""Pure values and rules that every other room builds on: the contract, the mutation schema, candidates, the
statistics and verdict rule, the fairness invariants, the noise floor, the surface's AST rules and the plug-in
registry. Imports neither pytest, nvflare nor torch."""
