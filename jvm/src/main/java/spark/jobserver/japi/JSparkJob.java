package spark.jobserver.japi;

import com.typesafe.config.Config;
import org.apache.spark.api.java.JavaSparkContext;

/** A Java job that gets a {@link JavaSparkContext} (a context of {@code JavaSparkContextFactory}). */
public interface JSparkJob<R> extends BaseJavaJob<Config, R, JavaSparkContext> {}
