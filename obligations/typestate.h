// Copyright The Asupersync Authors.
//
// obligations/typestate.h: annotations for Clang's consumed-state analysis (`-Wconsumed`).
//
// What it is for: the obligation tokens (`Permit<T>`, `Lease`) are linear: each is consumed
// exactly once (SPEC 5.1). The rvalue ref-qualifiers on their consuming members reject the
// common misuse at compile time with every compiler (SPEC 5.2). Clang can check more: with
// `-Wconsumed` it tracks, per local variable, whether a token is `unconsumed` or `consumed` and
// warns when a consuming member is called on one that was already consumed or moved from
// (`std::move(p).send(1); std::move(p).send(2);`). These macros attach that analysis's
// attributes under Clang and expand to nothing elsewhere.
//
// The analysis is local and conservative: a token reached through a pointer, a reference or a
// container is in the `unknown` state and is not checked; the runtime check (an abort naming the
// misuse) covers those. `-Wconsumed` is not part of `-Wall`; obligations/no_compile_test.sh
// turns it on for one snippet to prove the annotations work.
//
// Thread-safety, lifetime, cancellation: not applicable (compile-time annotations only).

#ifndef ASUPERSYNC_OBLIGATIONS_TYPESTATE_H_
#define ASUPERSYNC_OBLIGATIONS_TYPESTATE_H_

#if defined(__clang__)
// On a class: its objects are tracked; `state` is the state assumed when nothing is known.
#define ASUPERSYNC_CONSUMABLE(state) __attribute__((consumable(state)))
// On a member function: warn when it is called on an object in a state not listed.
#define ASUPERSYNC_CALLABLE_WHEN(...) __attribute__((callable_when(__VA_ARGS__)))
// On a member function: the object's state after the call.
#define ASUPERSYNC_SET_TYPESTATE(state) __attribute__((set_typestate(state)))
// On a constructor: the new object's state. On a parameter: the argument's state afterwards.
#define ASUPERSYNC_RETURN_TYPESTATE(state) __attribute__((return_typestate(state)))
// On a `bool` member function: returns true exactly when the object is in `state`.
#define ASUPERSYNC_TEST_TYPESTATE(state) __attribute__((test_typestate(state)))
#else
#define ASUPERSYNC_CONSUMABLE(state)
#define ASUPERSYNC_CALLABLE_WHEN(...)
#define ASUPERSYNC_SET_TYPESTATE(state)
#define ASUPERSYNC_RETURN_TYPESTATE(state)
#define ASUPERSYNC_TEST_TYPESTATE(state)
#endif

#endif  // ASUPERSYNC_OBLIGATIONS_TYPESTATE_H_
