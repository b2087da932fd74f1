#include "lab/tracked.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace asupersync::lab {

TrackedBase::TrackedBase(std::string name) : name_(std::move(name)) {
  if (LabRuntime* runtime = LabRuntime::current()) {
    runtime_ = runtime;
    run_ = runtime->run_id();
    index_ = runtime->register_object(*this, name_);
  }
}

TrackedBase::~TrackedBase() {
  LabRuntime* runtime = LabRuntime::current();
  const bool ours = runtime != nullptr && runtime == runtime_ && runtime->run_id() == run_;
  if (head_ != nullptr && ours) {
    std::string waiting;
    for (Waiter* waiter = head_; waiter != nullptr; waiter = waiter->next_) {
      if (waiter->task != nullptr)
        absl::StrAppend(&waiting, waiting.empty() ? "" : ", ", "'", waiter->task->name, "'");
    }
    runtime->record_violation("use_after_scope",
                              absl::StrCat("lab::Tracked '", name_.empty() ? "(unnamed)" : name_,
                                           "' destroyed while task ", waiting,
                                           " waits on it: the waiter outlived the data"));
  }
  while (head_ != nullptr) {
    Waiter* waiter = head_;
    unlink(*waiter);
    waiter->object_ = nullptr;
  }
  if (ours) runtime->unregister_object(index_, referenced_);
}

void TrackedBase::note(internal::AccessKind kind, bool has_value, int64_t value) const {
  LabRuntime* runtime = LabRuntime::current();
  if (runtime == nullptr) return;
  if (runtime != runtime_ || runtime->run_id() != run_ || index_ == 0) {
    runtime->record_violation(
        "tracked_outside_run",
        absl::StrCat("lab::Tracked '", name_.empty() ? "(unnamed)" : name_,
                     "' was created outside this lab run; its state would carry over between "
                     "runs and the lab cannot order its accesses: create it inside the scenario"));
    return;
  }
  runtime->on_object_access(index_, kind, has_value, value);
}

void TrackedBase::note_waiters_changed() const {
  LabRuntime* runtime = LabRuntime::current();
  if (runtime != nullptr && runtime == runtime_ && runtime->run_id() == run_) {
    runtime->on_object_waiters_changed(index_);
  }
}

void TrackedBase::link(Waiter& waiter) {
  waiter.prev_ = tail_;
  waiter.next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = &waiter;
  } else {
    head_ = &waiter;
  }
  tail_ = &waiter;
  waiter.linked_ = true;
}

void TrackedBase::unlink(Waiter& waiter) {
  if (!waiter.linked_) return;
  if (waiter.prev_ != nullptr) {
    waiter.prev_->next_ = waiter.next_;
  } else {
    head_ = waiter.next_;
  }
  if (waiter.next_ != nullptr) {
    waiter.next_->prev_ = waiter.prev_;
  } else {
    tail_ = waiter.prev_;
  }
  waiter.prev_ = waiter.next_ = nullptr;
  waiter.linked_ = false;
}

void TrackedBase::wake_waiters() {
  if (head_ == nullptr) return;
  // Tokens are taken in registration (FIFO) order, then woken after the list is updated.
  std::vector<asupersync::internal::WakeToken> tokens;
  for (Waiter* waiter = head_; waiter != nullptr;) {
    Waiter* next = waiter->next_;
    if (!waiter->level_ || waiter->satisfied()) {
      unlink(*waiter);
      waiter->woken_ = true;
      tokens.emplace_back(*waiter);
    }
    waiter = next;
  }
  for (asupersync::internal::WakeToken& token : tokens) std::move(token).wake(Lane::kReady);
}

TrackedBase::Waiter::Waiter(Cx& cx, TrackedBase& object, bool level)
    : cx_(&cx), object_(&object), level_(level) {
  what = level ? "lab::Tracked wait_until" : "lab::Tracked wait_changed";
  scope = &cx.region();
}

TrackedBase::Waiter::~Waiter() {
  if (linked_ && object_ != nullptr) {
    object_->unlink(*this);
    object_->note_waiters_changed();
  }
}

bool TrackedBase::Waiter::await_suspend(std::coroutine_handle<> handle) {
  early_ = cx_->poll_cancel();
  if (!early_.ok()) return false;
  if (object_ == nullptr) {
    early_ = absl::FailedPreconditionError("lab::Tracked wait on a destroyed object");
    return false;
  }
  asupersync::internal::begin_wait(cx_->task_record(), *this);
  object_->link(*this);
  if (asupersync::internal::park(*this, handle)) return true;
  // Not parked: a store woke it in between (then it is unlinked), or a cancel is deliverable.
  if (linked_) {
    object_->unlink(*this);
    cancelled_ = true;
  } else {
    cancelled_ = !woken_;
  }
  return false;
}

absl::Status TrackedBase::Waiter::await_resume() {
  if (!early_.ok()) return early_;
  if (cancelled_) {
    absl::Status status = cx_->poll_cancel();
    if (!status.ok()) return status;
    return absl::CancelledError("lab::Tracked wait cancelled");
  }
  return absl::OkStatus();
}

void TrackedBase::Waiter::interrupt() {
  if (linked_ && object_ != nullptr) {
    object_->unlink(*this);
    object_->note_waiters_changed();
  }
  cancelled_ = true;
}

}  // namespace asupersync::lab
