// Task<T>: the coroutine type of every task body.
//
// A Task<T> is lazily started: creating one runs nothing. It runs either as a spawned task
// (cx.spawn, SPEC 2.1), or inline when another coroutine awaits it (`T v = co_await f(cx);`),
// which transfers control symmetrically, so chains of awaits do not grow the stack. Frames come
// from a per-thread recycling allocator.
//
// Results: `co_return value;`. An exception that escapes an awaited Task is rethrown to the
// awaiter; one that escapes a spawned task becomes its Panicked outcome (SPEC 2.3). A spawned
// Task<absl::Status> or Task<absl::StatusOr<U>> that returns a non-OK status finishes with Err.
//
// Thread-safety: a Task object is owned by one thread at a time.
// Lifetime: the Task owns its frame until it is awaited to completion or handed to the
// runtime by spawn; destroying an unfinished Task destroys its frame (and, recursively, the
// frames it awaits; every awaiter deregisters in its destructor).
// Cancellation contract: awaiting a Task is not itself a cancellation point; the cancellation
// points are the runtime waits inside it, which all take the Cx.

#ifndef ASUPERSYNC_CORE_TASK_H_
#define ASUPERSYNC_CORE_TASK_H_

#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "core/internal/frame_allocator.h"
#include "core/internal/task_record.h"

namespace asupersync {

template <typename T = void>
class Task;

namespace internal {

class PromiseBase {
 public:
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  // The address of a coroutine's first parameter. (Not a member template operator new: GCC 12
  // pairs one with no operator delete and warns at every coroutine.)
  struct ParameterAddress {
    template <typename U>
    ParameterAddress(U& parameter) : address(std::addressof(parameter)) {}  // NOLINT: implicit
    const volatile void* address;
  };
  struct AnyParameter {
    template <typename U>
    AnyParameter(U&) {}  // NOLINT: implicit
  };
  // Chosen for every coroutine with two parameters; a spawned callable's own coroutine (called
  // as callable(cx): a member function, so the callable is the first) takes the frame area
  // reserved in its record's block (see spawn). Clang 14 passes no object parameter for a
  // lambda: such frames are allocated apart from the record, which is correct, only slower.
  static void* operator new(std::size_t size, ParameterAddress callable, AnyParameter) {
    return allocate_root_frame(size, const_cast<const void*>(callable.address));
  }
  static void operator delete(void* block, std::size_t size) noexcept {
    deallocate_frame(block, size);
  }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> handle) noexcept {
      PromiseBase& promise = handle.promise();
      if ((promise.link_ & kRecordTag) == 0) {
        if (promise.link_ != 0) {
          return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(promise.link_));
        }
      } else {
        reinterpret_cast<TaskRecord*>(promise.link_ & ~kRecordTag)->frame_finished = true;
      }
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { exception = std::current_exception(); }

  // The coroutine that awaits this one (inline).
  void set_continuation(std::coroutine_handle<> caller) {
    link_ = reinterpret_cast<std::uintptr_t>(caller.address());
  }
  // The runtime record of a spawned root coroutine (which is never awaited inline).
  void set_record(TaskRecord* record) {
    link_ = reinterpret_cast<std::uintptr_t>(record) | kRecordTag;
  }

  std::exception_ptr exception;

 private:
  // One word for either link, in every coroutine frame: the continuation's frame address, or
  // the record's address with the low bit set (both are at least 8-aligned); 0 for neither.
  static constexpr std::uintptr_t kRecordTag = 1;
  std::uintptr_t link_ = 0;
};

template <typename T>
class TaskPromise : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;

  template <typename U = T>
  requires std::convertible_to<U&&, T>
  void return_value(U&& value) { value_.emplace(std::forward<U>(value)); }

  T take_value() { return std::move(*value_); }
  bool has_value() const { return value_.has_value(); }

 private:
  std::optional<T> value_;
};

template <>
class TaskPromise<void> : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept { returned_ = true; }
  void take_value() {}
  bool has_value() const { return returned_; }

 private:
  bool returned_ = false;
};

}  // namespace internal

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = internal::TaskPromise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle handle) : handle_(handle) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const { return static_cast<bool>(handle_); }

  // Gives the frame to the caller (spawn).
  Handle release() { return std::exchange(handle_, {}); }

  // Awaiting runs the task inline and yields its value (rethrowing an escaped exception).
  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle handle;
      bool await_ready() const noexcept { return !handle || handle.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
        handle.promise().set_continuation(caller);
        return handle;
      }
      T await_resume() {
        promise_type& promise = handle.promise();
        if (promise.exception) std::rethrow_exception(promise.exception);
        return promise.take_value();
      }
    };
    return Awaiter{handle_};
  }

 private:
  void reset() {
    if (handle_) handle_.destroy();
    handle_ = {};
  }

  Handle handle_;
};

namespace internal {

template <typename T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}

inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

template <typename T>
struct IsTask : std::false_type {};
template <typename T>
struct IsTask<Task<T>> : std::true_type {};

}  // namespace internal
}  // namespace asupersync

#endif  // ASUPERSYNC_CORE_TASK_H_
