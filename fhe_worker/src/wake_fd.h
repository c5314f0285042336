// An eventfd that compute threads signal and the I/O thread polls next to its ZeroMQ sockets
// (zmq_poll accepts plain file descriptors), so replies are sent as soon as they are ready.
#pragma once

namespace fhe_worker {

class WakeFd {
 public:
  WakeFd();  // throws fhe_worker::WorkerError when no eventfd can be made
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  int fd() const { return fd_; }
  // Any thread: makes fd() readable.
  void signal();
  // The polling thread: makes fd() unreadable again.
  void drain();

 private:
  int fd_;
};

}  // namespace fhe_worker
