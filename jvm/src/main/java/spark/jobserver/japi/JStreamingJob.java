package spark.jobserver.japi;

import com.typesafe.config.Config;
import org.apache.spark.streaming.StreamingContext;

/** A Java job that gets the context's {@link StreamingContext} (a streaming context). */
public interface JStreamingJob<R> extends BaseJavaJob<Config, R, StreamingContext> {}
