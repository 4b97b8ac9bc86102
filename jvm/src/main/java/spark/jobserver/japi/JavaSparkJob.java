package spark.jobserver.japi;

import org.apache.spark.api.java.JavaSparkContext;

/** {@link JSparkJob} whose verify makes data of its own type. */
public interface JavaSparkJob<D, R> extends BaseJavaJob<D, R, JavaSparkContext> {}
