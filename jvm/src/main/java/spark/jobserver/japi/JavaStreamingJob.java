package spark.jobserver.japi;

import org.apache.spark.streaming.StreamingContext;

/** {@link JStreamingJob} whose verify makes data of its own type. */
public interface JavaStreamingJob<D, R> extends BaseJavaJob<D, R, StreamingContext> {}
